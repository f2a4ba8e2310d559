"""Entry points kept from the seed workflow."""
