"""sslab's version, written into every results.json."""
__version__ = "0.1.0"
