% Two photos of clothing items (Fashion-MNIST): are they the same kind of item?
% item(X, I): the network item_net reads photo X as item I.
nn(item_net, [X], I, [tshirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, boot]) :: item(X, I).

kind(tshirt, top).
kind(pullover, top).
kind(coat, top).
kind(shirt, top).
kind(trouser, trousers).
kind(dress, dress).
kind(bag, bag).
kind(sandal, shoe).
kind(sneaker, shoe).
kind(boot, shoe).

% same_kind(X, Y): a true/false query, no output argument.
same_kind(X, Y) :- item(X, A), item(Y, B), kind(A, K), kind(B, K).
