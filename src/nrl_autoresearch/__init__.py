"""autoresearch: autonomous research campaigns with git as the ledger."""

__version__ = "0.1.0"
