"""One model per file. Each module registers its model (:func:`jaxsim.physics.registry.register`);
the registry imports every module here on its first lookup, so a new model is one new file."""
