"""Exports (a documented zip of JSON Lines and files) and imports (ours, and Slack's)."""
