"""Command implementations behind glmtune/cli.py (argument handling and printing; no model logic)."""
