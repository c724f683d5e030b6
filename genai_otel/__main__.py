import sys

from genai_otel.cli import main

sys.exit(main())
