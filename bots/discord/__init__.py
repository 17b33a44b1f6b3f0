"""The Discord adapter: discord.py over the neutral conversation core."""
