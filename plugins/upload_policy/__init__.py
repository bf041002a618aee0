"""Example plugin: refuses uploads whose path matches configured patterns."""
