from rnnsym.cli import main

raise SystemExit(main())
