"""`python -m online.simulation`: CTR of random vs oracle slates (see calibration.py)."""

from online.simulation.calibration import main

main()
