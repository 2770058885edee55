"""Command groups of the CLI, one module each, each exposing `register(subparsers)`."""
