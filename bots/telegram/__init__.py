"""The Telegram adapter: python-telegram-bot handlers and the renderer of neutral views."""
