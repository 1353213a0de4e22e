"""Test fixtures on disk and the scripts that write them."""
