#!version:1.0.0.1
## Boot file for 805ec009abdc: the phone downloads these files in order.
include:config "805ec009abdc.cfg"
