"""Programs, query templates and inference engines."""

import warnings

# DeepProbLog warns on import that its optional approximate engine (SWI-Prolog) is missing; we never use it.
warnings.filterwarnings("ignore", message="ApproximateEngine is not available")
