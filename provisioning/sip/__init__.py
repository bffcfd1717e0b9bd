"""A small SIP toolkit on asyncio: enough for check-sync NOTIFYs (server side) and the handset
emulator (REGISTER, answering NOTIFY). Not a general SIP stack."""
