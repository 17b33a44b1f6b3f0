"""The platform-neutral conversation core shared by every chat adapter.

Adapters translate platform events into :mod:`bots.core.intents`, call
:class:`bots.core.conversation.Conversation`, and implement
:class:`bots.core.conversation.Renderer` to show the neutral :mod:`bots.core.views`.
Nothing here imports a chat library.
"""
