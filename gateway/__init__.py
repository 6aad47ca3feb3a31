"""SafeShare gateway: share safeguarding information only with a complete golden-rules justification."""

__version__ = "0.1.0"
