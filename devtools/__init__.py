"""Tools for development and the demo only: never installed or imported in production."""
