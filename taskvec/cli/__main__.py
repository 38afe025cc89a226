"""``python -m taskvec.cli`` (torchrun launches ``-m taskvec.cli -- collect|search …``)."""

from taskvec.cli.main import main

if __name__ == "__main__":
    main()
