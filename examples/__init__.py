"""Examples that use mixopt the way its users would; run from the repository root."""
