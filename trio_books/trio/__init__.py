"""The Trio build: Quart-Trio on Hypercorn's trio worker, fan-out in a nursery."""
