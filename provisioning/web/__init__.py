"""The web Manager: server-rendered pages where customers order, change, return and associate
phones, and operators ship orders and watch devices. Mounted at /manager by the app factory;
every page calls the same domain functions as the JSON API and the CLI."""
