"""Decay file formats, one module each. A module registers its reader for its file suffixes
(:func:`jaxsim.io.readers.register_format`); :func:`jaxsim.io.readers.read_decays` imports every
module here on first use, so a new format is one new file."""
