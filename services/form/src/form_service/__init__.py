"""The form service: apps (应用), forms, their draft field lists and immutable published versions."""
