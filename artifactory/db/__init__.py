"""The metadata database: typed models, the engine, and the queries the rest of the core uses."""
