"""Data: sources (xLAM, BFCL) → validated rows → rendered examples in split files."""
