"""densitybench: density estimators on images, compared by a stated protocol."""

__version__ = "0.1.0"
