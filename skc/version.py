"""skc's version: one string, kept apart from skc/__init__.py so the compile driver (whose cache key
names it) and the CLI can read it without importing the public-API package that imports them."""
__version__ = "0.1.0"
