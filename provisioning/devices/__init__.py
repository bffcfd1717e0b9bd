"""Device knowledge: MAC addresses, the catalog of families and models, identification."""
