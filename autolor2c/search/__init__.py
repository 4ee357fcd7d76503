"""Search: budgets, declarative search spaces, and the Optuna study that explores them."""
