"""Models: loading original THUDM checkpoints into native classes, conversion, adapters, export."""
