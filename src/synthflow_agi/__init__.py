"""Hand an answered Asterisk call to a Synthflow AI voice agent."""

__version__ = "0.1.0"
