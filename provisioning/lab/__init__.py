"""Lab tools: the handset emulator and the storm generator."""
