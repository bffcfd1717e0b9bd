#!version:1.0.0.1
## Boot file for 0015654aa937: the phone downloads these files in order.
include:config "0015654aa937.cfg"
