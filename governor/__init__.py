"""governor: access governance and audit for an organisation's social media accounts."""

__version__ = "0.1.0"
