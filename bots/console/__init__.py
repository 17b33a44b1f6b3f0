"""The terminal chat (``storyloom chat``): the conversation core with no chat platform."""
