"""Data files shipped inside childnet (see each folder's README for source and licence)."""
