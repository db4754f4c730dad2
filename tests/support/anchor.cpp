int zcio_test_support_anchor = 0;
