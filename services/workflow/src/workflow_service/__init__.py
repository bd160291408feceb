"""The workflow service: automations triggered by record events, with conditions and actions."""
