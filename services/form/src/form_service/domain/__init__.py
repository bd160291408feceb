"""The form engine's domain: pure Python (no grpc, no mongo).

`models` holds App, Form and FormVersion; `rules` the pure rules on drafts and
field keys; `errors` the localised domain errors; `repository` the storage
interface the service needs; `service` the use cases (FormEngine).
"""
