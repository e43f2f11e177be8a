from clone.cli import main

raise SystemExit(main())
