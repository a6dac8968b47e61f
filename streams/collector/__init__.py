"""HTTP collector: the Segment HTTP Tracking API (plus ``/v1/crm``) in front of the inbound topic.

Layout: ``settings`` (what an operator sets), ``handling`` (pure: request body → accepted events
and rejections), ``kafka_out`` (the one module that talks to Kafka), ``app`` (aiohttp routes).
Importing this package must stay cheap: :mod:`streams.settings` imports ``collector.settings``.
"""
