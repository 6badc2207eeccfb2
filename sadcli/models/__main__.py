import sys

from sadcli.models.spec import main

sys.exit(main())
