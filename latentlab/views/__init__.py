"""One module per tab or lecture panel: plain functions run(registry, inputs) -> an Outputs dataclass."""
