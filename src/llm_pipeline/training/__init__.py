"""The torchrun world: the launcher and one standalone entrypoint per trainer. Imports no Kedro."""
