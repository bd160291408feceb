"""`python -m form_service serve`: the form service's gRPC server with its outbox relay."""

from __future__ import annotations

import argparse

from crm_runtime import configure_logging, serve_forever
from form_service.server import build_form_server, connect_store
from form_service.settings import Settings


def serve() -> None:
    """Connect to the store (retrying), ensure indexes, start the relay, serve until SIGTERM."""
    settings = Settings.from_env()
    configure_logging("form", settings.log_level)
    db = connect_store(settings.mongo_url, settings.form_db)
    form_server = build_form_server(db, port=settings.grpc_port, amqp_url=settings.amqp_url)
    form_server.relay.start()
    serve_forever(form_server.bundle, settings.http_port, on_stop=form_server.relay.stop)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="form_service", description="The form engine service.")
    parser.add_argument("command", choices=["serve"])
    parser.parse_args(argv)
    serve()


if __name__ == "__main__":
    main()
