"""Studies built on the numerics: sweeps into stores, fits to data, sensitivity analysis, ionic
protocols in lab time. Import the module you need (``jaxsim.studies.sweep``, ...)."""
