"""The paper's figures (Wen & Jia), one module per figure, each with ``reproduce(out_dir)``."""
