"""Built-in formats, each registered through the `artifactory` entry-point group."""
