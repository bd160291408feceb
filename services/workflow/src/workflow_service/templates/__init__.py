"""Built-in workflow templates (JSON data)."""
