"""Train package."""
