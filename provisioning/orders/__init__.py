"""Ordering a Plug & Phone: catalog and prices, delivery (address or pick-up point), the
24-business-hour shipping promise, fulfilment at the warehouse, replacements and returns.

Every operation is a plain async function taking a session inside a transaction its caller
owns; carriers are plug-ins behind `carriers.Carrier`."""
