"""The Faust app: topics, thin agents, and the pure rules they call."""
