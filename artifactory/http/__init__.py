"""HTTP helpers shared by every format: errors, paths, URLs, conditional and ranged responses."""
